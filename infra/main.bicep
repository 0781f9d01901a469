// Anteroom on Azure: `azd up` provisions this template and deploys the app; `azd down` removes
// the resource group. Everything is reached with Entra identities; the only keys are the app's
// own (HMAC, token and callback signing), generated once by the preprovision hook
// (infra/hooks/azd_keys.py), kept in the azd environment and stored in Key Vault.
targetScope = 'subscription'

@description('azd environment name: names the resource group and seeds every resource name.')
@minLength(1)
@maxLength(64)
param environmentName string

@description('Region of every resource; it must offer the Flex Consumption plan (az functionapp list-flexconsumption-locations).')
@minLength(1)
param location string

@description('Object id of the person or pipeline running azd (azd fills it in); granted read access to the tables and secrets. Empty grants nothing.')
param principalId string = ''

@description('Kind of principal principalId is.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param principalType string = 'User'

@description('Resource group name; empty: rg-<environmentName>.')
@maxLength(90)
param resourceGroupName string = ''

@description('Function App name, which is also the endpoint\'s host name; empty: derived from the environment.')
@maxLength(60)
param functionAppName string = ''

@description('Memory of each Function App instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the Function App scales out to (Flex Consumption accepts 40 to 1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Replication of the storage account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSkuName string = 'Standard_LRS'

@description('Days Log Analytics keeps logs.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

@description('Days a deleted Key Vault (or secret) stays recoverable.')
@minValue(7)
@maxValue(90)
param keyVaultSoftDeleteRetentionInDays int = 7

@description('Key Vault purge protection; once on it cannot be turned off, and azd down --purge can no longer free the vault name before the retention ends.')
param keyVaultPurgeProtection bool = true

@description('Schema of the call events (ANTEROOM_EVENTGRID_SCHEMA), and the only one the topic accepts.')
@allowed([
  'EventGridSchema'
  'CloudEventSchemaV1_0'
])
param eventGridSchema string = 'EventGridSchema'

@description('The resource id call events name as their topic/source (ANTEROOM_ARM_RESOURCE_ID); empty: a Communication Services-shaped id in this resource group.')
@maxLength(400)
param armResourceId string = ''

@description('GUID naming this deployment (ANTEROOM_RESOURCE_ID): every user id is 8:acs:<it>_<guid>, so it must never change. Generated once by the preprovision hook.')
@minLength(36)
@maxLength(36)
param anteroomResourceId string

@description('Prefix of the app\'s table names (ANTEROOM_TABLE_PREFIX): letters and digits, starting with a letter.')
@minLength(1)
@maxLength(40)
param tablePrefix string = 'anteroom'

@description('Extra host names clients sign requests for (ANTEROOM_PUBLIC_HOSTS), comma-separated: custom domains, a proxy in front.')
@maxLength(1000)
param publicHosts string = ''

@description('This resource\'s phone numbers (ANTEROOM_PSTN_CALLER_NUMBERS): E.164, comma-separated.')
@maxLength(1000)
param pstnCallerNumbers string = ''

@description('PSTN gateway URL (ANTEROOM_PSTN_GATEWAY_URL); empty: dial-out answers 503 ServiceUnavailable "No PSTN gateway is configured".')
@maxLength(2048)
param pstnGatewayUrl string = ''

@description('Primary HMAC access key, base64 (at least 16 bytes).')
@secure()
@minLength(24)
param accessKey string

@description('Secondary HMAC access key, base64 (at least 16 bytes).')
@secure()
@minLength(24)
param secondaryAccessKey string

@description('Key signing access tokens, base64 (at least 16 bytes).')
@secure()
@minLength(24)
param tokenSigningKey string

@description('Base64 of the RSA private key PEM (2048 bits or more) signing Call Automation callbacks.')
@secure()
@minLength(1200)
param callbackSigningKey string

// The azd service (azure.yaml) the Function App is tagged with.
var serviceName = 'api'
var tags = {
  'azd-env-name': environmentName
}
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var groupName = empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
var appName = empty(functionAppName) ? 'func-anteroom-${resourceToken}' : functionAppName
var eventsSource = empty(armResourceId) ? '/subscriptions/${subscription().subscriptionId}/resourceGroups/${groupName}/providers/Microsoft.Communication/communicationServices/${appName}' : armResourceId

resource group 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: groupName
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: group
  params: {
    name: 'id-anteroom-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: group
  params: {
    workspaceName: 'log-anteroom-${resourceToken}'
    appInsightsName: 'appi-anteroom-${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: group
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    skuName: storageSkuName
    deploymentContainerName: 'app-package'
    workspaceId: monitoring.outputs.workspaceId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: group
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    softDeleteRetentionInDays: keyVaultSoftDeleteRetentionInDays
    enablePurgeProtection: keyVaultPurgeProtection
    workspaceId: monitoring.outputs.workspaceId
    accessKey: accessKey
    secondaryAccessKey: secondaryAccessKey
    tokenSigningKey: tokenSigningKey
    callbackSigningKey: callbackSigningKey
  }
}

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  scope: group
  params: {
    name: 'evgt-anteroom-${resourceToken}'
    location: location
    tags: tags
    inputSchema: eventGridSchema
    workspaceId: monitoring.outputs.workspaceId
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  scope: group
  params: {
    appPrincipalId: identity.outputs.principalId
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    eventGridTopicName: eventGrid.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: group
  // The roles first, so the app's first start already resolves its Key Vault references and
  // reaches its storage.
  dependsOn: [
    rbac
  ]
  params: {
    name: appName
    planName: 'plan-anteroom-${resourceToken}'
    location: location
    tags: tags
    serviceName: serviceName
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    workspaceId: monitoring.outputs.workspaceId
    eventGridEndpoint: eventGrid.outputs.endpoint
    eventGridSchema: eventGridSchema
    armResourceId: eventsSource
    anteroomResourceId: anteroomResourceId
    tablePrefix: tablePrefix
    publicHosts: publicHosts
    pstnCallerNumbers: pstnCallerNumbers
    pstnGatewayUrl: pstnGatewayUrl
    accessKeyUri: keyVault.outputs.accessKeyUri
    secondaryAccessKeyUri: keyVault.outputs.secondaryAccessKeyUri
    tokenSigningKeyUri: keyVault.outputs.tokenSigningKeyUri
    callbackSigningKeyUri: keyVault.outputs.callbackSigningKeyUri
  }
}

// azd stores these in the environment (.azure/<env>/.env); the hooks read them. No secret here.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = group.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_EVENTGRID_TOPIC_ID string = eventGrid.outputs.id
output ANTEROOM_ENDPOINT string = functionApp.outputs.endpoint
output ANTEROOM_STORAGE_ACCOUNT_URL string = storage.outputs.tableEndpoint
output ANTEROOM_EVENTGRID_ENDPOINT string = eventGrid.outputs.endpoint
output ANTEROOM_RESOURCE_ID string = anteroomResourceId
